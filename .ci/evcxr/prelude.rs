// Loaded by evcxr from $EVCXR_CONFIG_DIR at kernel start (`.ci/run` points it here).
// evcxr reports a panic and carries on, so nbconvert would call a panicking notebook a success. This hook makes a
// panic fatal: the message goes to stderr on ONE line (evcxr forwards stderr line by line) and the kernel exits,
// which fails the nbconvert run and therefore CI.
std::panic::set_hook(Box::new(|info| {
    use std::io::Write;
    let msg = info.to_string().replace('\n', " | ");
    let mut err = std::io::stderr();
    let _ = writeln!(err, "notebook panic: {msg}");
    let _ = err.flush();
    std::process::exit(101);
}));
