import Foundation
#if canImport(Glibc)
import Glibc
#endif
@_exported import B
// import A: a comment is no import
/* import A
   nor is a block comment */

public let c = b + 1
public let text = """
    import A
    """
