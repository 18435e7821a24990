extension JSONValue {
    /// Containers nested deeper than this are rejected, so hostile input cannot exhaust memory or stack.
    public static let defaultMaxDepth = 512

    /// Parses one RFC 8259 JSON text from UTF-8 bytes.
    ///
    /// Strict: no comments, trailing commas, NaN or leading zeros; strings must be valid
    /// UTF-8 without lone surrogates; only whitespace may surround the value. A key
    /// repeated in an object keeps its last value. Numbers without fraction or exponent
    /// that fit in `Int64` become `.int`, every other number `.double`; a number too
    /// large for a `Double` is rejected.
    @inlinable
    public static func parse(
        _ bytes: some Collection<UInt8>, maxDepth: Int = defaultMaxDepth
    ) throws(JSONParseError) -> JSONValue {
        let result = bytes.withContiguousStorageIfAvailable { buffer in
            parse(buffer: buffer, maxDepth: maxDepth)
        }
        if let result { return try result.get() }
        let copy = Array(bytes)
        return try copy.withUnsafeBufferPointer { parse(buffer: $0, maxDepth: maxDepth) }.get()
    }

    /// Parses one JSON text from a string (its UTF-8).
    public static func parse(_ text: String, maxDepth: Int = defaultMaxDepth) throws(JSONParseError) -> JSONValue {
        var text = text
        return try text.withUTF8 { parse(buffer: $0, maxDepth: maxDepth) }.get()
    }

    /// Parses one JSON text from a buffer, as a `Result` (the run log parses slices of its lines this way).
    public static func parse(buffer: UnsafeBufferPointer<UInt8>, maxDepth: Int = defaultMaxDepth) -> Result<JSONValue, JSONParseError> {
        var parser = JSONParser(maxDepth: maxDepth)
        do throws(JSONParseError) {
            return .success(try parser.parseDocument(buffer))
        } catch {
            return .failure(error)
        }
    }
}
