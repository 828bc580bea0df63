import Foundation

/// Where a restore's database step is, as its journal records it (the raw values are the journal's
/// JSON, unchanged, so journals written by older versions decode).
public enum DatabaseState: String, Sendable, Codable {
    /// Nothing changed.
    case untouched
    /// New databases being created and loaded.
    case loading
    case loaded
    case checked
    /// The rename transaction.
    case swapping
    case swapped
    /// Final.
    case restored

    /// The live names may hold the restored databases.
    public var mayBeSwapped: Bool { self == .swapping || self == .swapped || self == .restored }
}
