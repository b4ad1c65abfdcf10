//! Thread priorities for the two threads outside the request path. The journal writer is
//! on the path of every acknowledgement: while it waits for a core, every request waiting
//! on its batch waits too. The compactor is background work that can catch up later.

/// Niceness of the journal writer. Measured on 2 shared cores under saturation, against
/// the writer at normal priority, interleaved: faster in 8 of 8 runs in each of two
/// measurements (median +8% and +6% durable holds/s), p99 no worse. -20 was no better.
/// Needs CAP_SYS_NICE (or an RLIMIT_NICE that allows it).
pub const JOURNAL_WRITER_NICE: libc::c_int = -10;

/// Niceness of the compactor where SCHED_IDLE is refused (see [`set_current_thread_idle`]).
/// At 10 it gave about 10% more holds/s than at 0; at 19, against 10, 8 interleaved runs
/// gave a better p99 in 7 and more holds/s in 6 (median +4%).
pub const COMPACTOR_NICE: libc::c_int = 19;

/// Sets the calling thread's niceness.
#[allow(unsafe_code)] // two libc calls on integers, see SAFETY
pub fn set_current_thread_nice(nice: libc::c_int) -> std::io::Result<()> {
    // SAFETY: gettid and setpriority take and return plain integers; on Linux a thread id
    // names one thread for PRIO_PROCESS, so this changes only the calling thread.
    os_result(unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, u32::try_from(tid).unwrap_or(0), nice)
    })
}

/// Moves the calling thread to SCHED_IDLE: it runs only in the time normal threads leave
/// idle. For the compactor: background work that yields to request threads while the
/// cores are busy (a sale) and catches up while they wait on the disk, or after.
#[allow(unsafe_code)] // one libc call, see SAFETY
pub fn set_current_thread_idle() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 names the calling thread; param is a valid sched_param.
    os_result(unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) })
}

/// A libc call's return code as a Result: 0 is success, anything else leaves errno.
fn os_result(code: libc::c_int) -> std::io::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
