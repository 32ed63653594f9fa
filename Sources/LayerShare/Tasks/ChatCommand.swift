import Foundation

/// One line typed in an interactive chat: a message, or a `/` command.
public enum ChatCommand: Equatable, Sendable {
    case message(String)
    /// Blank line: ignored.
    case empty
    case help
    case reset
    case exit
    /// `/system TEXT` sets the system prompt (and starts a new conversation); `/system` alone shows it.
    case system(String?)
    case unknown(String)

    public static let helpText = """
        commands:
          /reset         start a new conversation (the cache is cleared, the system prompt kept)
          /system TEXT   set the system prompt and start a new conversation (/system alone shows it)
          /help          this list
          /exit, /quit   end the session (so does Ctrl-D on an empty line, or Ctrl-C twice at the prompt)
        A message that starts with / is sent by doubling it: //etc/hosts sends /etc/hosts.
        Ctrl-C during a reply stops it; what was shown stays in the conversation.
        """

    public init(parsing line: String) {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty { self = .empty; return }
        if trimmed.hasPrefix("//") { self = .message(String(trimmed.dropFirst())); return }
        guard trimmed.hasPrefix("/") else { self = .message(line); return }
        let word = String(trimmed.prefix { !$0.isWhitespace })
        let rest = trimmed.dropFirst(word.count).trimmingCharacters(in: .whitespaces)
        switch (word, rest.isEmpty) {
        case ("/help", true), ("/?", true): self = .help
        case ("/reset", true): self = .reset
        case ("/exit", true), ("/quit", true): self = .exit
        case ("/system", _): self = .system(rest.isEmpty ? nil : rest)
        default: self = .unknown(trimmed)
        }
    }
}
