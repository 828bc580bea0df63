import MSBKit
import MSBPackages
/// A dpkg command line, as far as the pre-invoke hook needs it. dpkg passes its hooks only
/// `DPKG_HOOK_ACTION` (plus DPKG_ROOT, DPKG_ADMINDIR, DPKG_FORCE), not the .deb files or package
/// names, so the hook reads dpkg's own arguments from /proc/<dpkg pid>/cmdline.
public struct DpkgInvocation: Sendable, Equatable {
    /// The action given on the command line (`install`, `unpack`, `remove`, ...), if any.
    public var action: String?
    /// Archive files, folders (with --recursive) or package names, in order.
    public var operands: [String]
    /// --recursive / -R: operands are folders searched for *.deb.
    public var recursive: Bool
    /// --pending / -a: act on all packages selected for the action.
    public var pending: Bool
    /// --no-act / --dry-run / --simulate.
    public var noAct: Bool
    public var root: String?
    public var admindir: String?
    public var instdir: String?

    public init(action: String? = nil, operands: [String] = [], recursive: Bool = false, pending: Bool = false,
                noAct: Bool = false, root: String? = nil, admindir: String? = nil, instdir: String? = nil) {
        self.action = action
        self.operands = operands
        self.recursive = recursive
        self.pending = pending
        self.noAct = noAct
        self.root = root
        self.admindir = admindir
        self.instdir = instdir
    }

    /// Long options that take a value, as `--opt=value` or `--opt value` (dpkg's cmdinfos table).
    static package let longWithValue: Set<String> = [
        "pre-invoke", "post-invoke", "path-exclude", "path-include", "verify-format", "status-logger",
        "status-fd", "log", "root", "abort-after", "admindir", "instdir", "ignore-depends", "debug", "command-fd",
    ]
    /// Short options that take a value (`-D10` or `-D 10`); `-c` is --command-fd.
    static package let shortWithValue: Set<Character> = ["D", "c"]
    static package let longActions: [String: String] = [
        "install": "install", "unpack": "unpack", "record-avail": "record-avail", "configure": "configure",
        "remove": "remove", "purge": "purge", "triggers-only": "triggers-only", "verify": "verify",
        "add-architecture": "add-architecture", "remove-architecture": "remove-architecture",
    ]
    static package let shortActions: [Character: String] = ["i": "install", "A": "record-avail", "r": "remove", "P": "purge", "V": "verify"]

    /// Parses dpkg's arguments (without argv[0]). Options end at `--` or at the first operand, as
    /// in dpkg's own parser. Unknown options are ignored; never throws: a
    /// command line dpkg rejects is one dpkg will not act on either.
    public static func parse(arguments: [String]) -> DpkgInvocation {
        var inv = DpkgInvocation()
        var i = 0
        var optionsDone = false
        func take(_ name: String, _ value: String) {
            switch name {
            case "root": inv.root = value
            case "admindir": inv.admindir = value
            case "instdir": inv.instdir = value
            default: break
            }
        }
        while i < arguments.count {
            let arg = arguments[i]
            i += 1
            if optionsDone || arg == "-" || !arg.hasPrefix("-") {
                // Like dpkg's option parser, the first non-option ends the options.
                inv.operands.append(arg)
                optionsDone = true
                continue
            }
            if arg == "--" {
                optionsDone = true
                continue
            }
            if arg.hasPrefix("--") {
                let body = arg.dropFirst(2)
                let name: String
                var value: String?
                if let eq = body.firstIndex(of: "=") {
                    name = String(body[..<eq])
                    value = String(body[body.index(after: eq)...])
                } else {
                    name = String(body)
                }
                if let action = longActions[name] {
                    inv.action = action
                } else if longWithValue.contains(name) {
                    if value == nil, i < arguments.count {
                        value = arguments[i]
                        i += 1
                    }
                    take(name, value ?? "")
                } else {
                    switch name {
                    case "pending": inv.pending = true
                    case "recursive": inv.recursive = true
                    case "no-act", "dry-run", "simulate": inv.noAct = true
                    default: break // --force-*, --refuse-*, --no-triggers, --auto-deconfigure, ...
                    }
                }
                continue
            }
            // A cluster of short options: -iR, -D10, -D 10.
            var chars = Array(arg.dropFirst())
            while !chars.isEmpty {
                let c = chars.removeFirst()
                if shortWithValue.contains(c) {
                    if chars.isEmpty, i < arguments.count { i += 1 }
                    chars = []
                } else if let action = shortActions[c] {
                    inv.action = action
                } else if c == "a" {
                    inv.pending = true
                } else if c == "R" {
                    inv.recursive = true
                }
            }
        }
        return inv
    }
}
