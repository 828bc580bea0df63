// libFuzzer entry point for the apt hook input parser; compiled only by `make fuzz-apt-hook`
// (swiftc -sanitize=fuzzer,address -D APT_HOOK_LIBFUZZER with the parser's sources), not in the
// test target. Property checked besides "no crash": what parses serialises and parses back equal.
#if APT_HOOK_LIBFUZZER
@_cdecl("LLVMFuzzerTestOneInput")
public func aptHookFuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = size == 0 || data == nil ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    do {
        let input = try AptHookInput.parse(bytes: bytes)
        _ = input.decision
        let again = try AptHookInput.parse(bytes: input.serialized())
        precondition(again == input, "serialise/parse round trip changed the input")
    } catch {
        precondition(!error.description.isEmpty && !error.description.contains("\n"), "bad error message")
    }
    return 0
}
#endif
