import Foundation
import Yams
import CYaml

/// Yams.compose for files a less trusted user may write (the config, regiond.conf, rackd.conf):
/// YAML anchors and aliases are refused before anything is composed. Neither file ever needs them,
/// and a "billion laughs" (an alias used as a mapping key, 10^9 expansions from 400 bytes) would
/// otherwise keep the composer busy for minutes, ignoring SIGTERM. The scan reads libyaml's events
/// only (linear in the text).
public enum SafeYAML {
    /// Throws `BackupError.config` (exit 78) naming `source` and the line when the text uses an
    /// anchor or an alias; parse errors are left to Yams.compose.
    public static func refuseAliases(_ yaml: String, source: String) throws {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return }
        defer { yaml_parser_delete(&parser) }
        let bytes = Array(yaml.utf8)
        try bytes.withUnsafeBufferPointer { buf in
            yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
            yaml_parser_set_input_string(&parser, buf.baseAddress, buf.count)
            var event = yaml_event_t()
            while true {
                guard yaml_parser_parse(&parser, &event) == 1 else { return }  // Yams reports the syntax error
                defer { yaml_event_delete(&event) }
                let line = event.start_mark.line + 1
                let anchor: UnsafeMutablePointer<yaml_char_t>?
                switch event.type {
                case YAML_ALIAS_EVENT: anchor = event.data.alias.anchor
                case YAML_SCALAR_EVENT: anchor = event.data.scalar.anchor
                case YAML_SEQUENCE_START_EVENT: anchor = event.data.sequence_start.anchor
                case YAML_MAPPING_START_EVENT: anchor = event.data.mapping_start.anchor
                case YAML_STREAM_END_EVENT: return
                default: anchor = nil
                }
                if anchor != nil {
                    let what = event.type == YAML_ALIAS_EVENT ? "an alias (*name)" : "an anchor (&name)"
                    throw BackupError.config("\(source) line \(line): YAML anchors and aliases are not allowed, found \(what)",
                                             hint: "write the values out in full")
                }
            }
        }
    }

    /// `refuseAliases`, then Yams.compose.
    public static func compose(_ yaml: String, source: String) throws -> Node? {
        try refuseAliases(yaml, source: source)
        return try Yams.compose(yaml: yaml)
    }
}
