import Foundation

/// What dpkg says went wrong, from its stderr: each "error processing package P (...):" with the
/// reason on the next lines, and each "dependency problems prevent configuration of P:" with the
/// unmet dependency. Its last line ("Errors were encountered while processing:" then one package
/// per line) names only the last package, which is seldom the cause.
public enum DpkgErrors {
    /// One line: "P: reason; Q: reason", the packages in dpkg's order (at most `limit`), or nil
    /// when stderr has no such block.
    public static func summary(_ stderr: String, limit: Int = 4) -> String? {
        let lines = stderr.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var found: [String] = []
        var i = 0
        while i < lines.count {
            let line = lines[i]
            i += 1
            let head: String?
            if let r = line.range(of: "dpkg: error processing package ") ?? line.range(of: "dpkg: error processing archive ") {
                head = String(line[r.upperBound...]).components(separatedBy: " (").first
            } else if let r = line.range(of: "dependency problems prevent configuration of ") {
                head = String(line[r.upperBound...]).trimmingCharacters(in: CharacterSet(charactersIn: ":"))
            } else { head = nil }
            guard let pkg = head else { continue }
            var reason: [String] = []
            while i < lines.count, lines[i].hasPrefix(" ") {
                reason.append(lines[i].trimmingCharacters(in: .whitespaces))
                i += 1
            }
            let text = "\(pkg): " + (reason.isEmpty ? "failed" : reason.joined(separator: " "))
            if !found.contains(text) { found.append(text) }
        }
        guard !found.isEmpty else { return nil }
        return found.prefix(limit).joined(separator: "; ") + (found.count > limit ? "; and \(found.count - limit) more" : "")
    }
}
