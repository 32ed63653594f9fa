import Foundation

/// The git commit this binary was built from, read at run time from the source checkout it was
/// compiled in (the path of this file is known at compile time). Nil when that checkout is gone
/// or git is not installed; "-dirty" marks uncommitted changes to tracked files.
public enum SourceRevision {
    public static func current(sourceFile: String = #filePath) -> String? {
        let directory = (sourceFile as NSString).deletingLastPathComponent
        guard FileManager.default.fileExists(atPath: directory),
              let head = git(["rev-parse", "--short=12", "HEAD"], in: directory), !head.isEmpty else { return nil }
        let dirty = git(["status", "--porcelain", "--untracked-files=no"], in: directory).map { !$0.isEmpty } ?? false
        return head + (dirty ? "-dirty" : "")
    }

    private static func git(_ arguments: [String], in directory: String) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git", "-C", directory] + arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
