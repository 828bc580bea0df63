import Foundation

/// The built maas-snapshot-backup: the first one found going up from the running test bundle
/// (it sits in .build/<triple>/<configuration>/ beside the tests), or nil.
public enum ToolBinary {
    public static var path: String? {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var d = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while d.path != "/" {
            let p = d.appendingPathComponent("maas-snapshot-backup").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
            d = d.deletingLastPathComponent()
        }
        return nil
    }
}
