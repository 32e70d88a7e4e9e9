//! Child processes that end with the server: a child gets `signal` from the kernel when the thread
//! that spawned it ends, even if the server is killed outright.

/// Makes `cmd`'s child receive `signal` when the spawning thread ends (and exit at once if the
/// server already died between fork and exec).
pub fn end_with_server(cmd: &mut tokio::process::Command, signal: nix::sys::signal::Signal) {
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls between fork and exec (prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(signal).map_err(std::io::Error::from)?;
            // The server may have died between fork and prctl: then nobody would stop this child.
            if nix::unistd::getppid().as_raw() as u32 != parent {
                nix::libc::_exit(1);
            }
            Ok(())
        });
    }
}
