# Sourced on the lent GPU machine before data/checkpoints/train-default.sh. That machine lacks fontconfig, freetype
# and fonts, which the binary links (plotters draws the figures' text), so they travel in .gpu/ beside the CUDA
# binary. Prepare once, here, from the project root (Debian/Ubuntu library paths):
#   mkdir -p .gpu/lib .gpu/fonts
#   for l in libfontconfig.so.1 libfreetype.so.6 libexpat.so.1 libz.so.1 libpng16.so.16 libbrotlidec.so.1 \
#            libbrotlicommon.so.1; do cp -L /lib/x86_64-linux-gnu/$l .gpu/lib/; done
#   cp /usr/share/fonts/truetype/dejavu/DejaVuSans{,-Bold,-Oblique}.ttf .gpu/fonts/
# then carry .gpu and run: source data/checkpoints/gpu-env.sh; data/checkpoints/train-default.sh .gpu/clustermaps-cuda SECONDS $OUT
export LD_LIBRARY_PATH=$PWD/.gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
mkdir -p /tmp/fc-cache
cat > /tmp/fonts.conf <<XML
<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <dir>$PWD/.gpu/fonts</dir>
  <cachedir>/tmp/fc-cache</cachedir>
  <alias><family>sans-serif</family><prefer><family>DejaVu Sans</family></prefer></alias>
</fontconfig>
XML
export FONTCONFIG_FILE=/tmp/fonts.conf
