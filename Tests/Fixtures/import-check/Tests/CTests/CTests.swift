@testable import C
import Testing

@Test func c() { #expect(C.c == 3) }
