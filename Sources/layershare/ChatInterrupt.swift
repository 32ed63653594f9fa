#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Ctrl-C in an interactive chat. The SIGINT handler only sets an atomic flag (async-signal-safe);
/// the reply's token loop and the line readers look at it.
enum ChatInterrupt {
    private static let flag = Atomic<Bool>(false)

    /// `restartingCalls`: while a reply is generated, interrupted system calls restart (nothing else
    /// sees EINTR); while a line is read, they do not, so Ctrl-C returns from the read at once.
    static func install(restartingCalls: Bool) {
        _ = flag.load(ordering: .relaxed)  // initialise the global here, never first inside the handler
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in ChatInterrupt.flag.store(true, ordering: .relaxed) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = restartingCalls ? Int32(SA_RESTART) : 0
        sigaction(SIGINT, &action, nil)
    }

    static var isSet: Bool { flag.load(ordering: .relaxed) }

    /// Whether Ctrl-C was pressed since the last call; clears it.
    static func take() -> Bool { flag.exchange(false, ordering: .relaxed) }
}
