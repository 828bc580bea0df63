// The apt hook input parser under libFuzzer: `make fuzz-apt-hook` builds this target with
// `swift build --sanitize fuzzer --sanitize address -Xswiftc -DAPT_HOOK_LIBFUZZER`, which links the
// policy target MSBPackageHooks as it ships. Property checked besides "no crash": what parses
// serialises and parses back equal, and every error is one line.
// Without the define it is a replayer: `apt-hook-fuzz FILE...` runs each input through the same check.
import Foundation
import MSBPackageHooks

func checkOne(_ bytes: [UInt8]) {
    do {
        let input = try AptHookInput.parse(bytes: bytes)
        _ = input.decision
        let again = try AptHookInput.parse(bytes: input.serialized())
        precondition(again == input, "serialise/parse round trip changed the input")
    } catch {
        precondition(!error.description.isEmpty && !error.description.contains("\n"), "bad error message")
    }
}

#if APT_HOOK_LIBFUZZER
@_cdecl("LLVMFuzzerTestOneInput")
public func aptHookFuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    checkOne(size == 0 || data == nil ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#else
@main
struct Replay {
    static func main() {
        for path in CommandLine.arguments.dropFirst() {
            guard let d = FileManager.default.contents(atPath: path) else { print("\(path): cannot read"); exit(66) }
            checkOne(Array(d))
            print("\(path): ok")
        }
    }
}
#endif
