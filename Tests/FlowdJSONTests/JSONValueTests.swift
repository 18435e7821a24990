import Foundation
import Testing

@testable import FlowdJSON

private func parse(_ s: String) throws(JSONParseError) -> JSONValue {
    try JSONValue.parse(Array(s.utf8))
}

private func rejects(_ bytes: [UInt8]) -> JSONParseError? {
    do {
        _ = try JSONValue.parse(bytes)
        return nil
    } catch {
        return error
    }
}

private func rejects(_ s: String) -> JSONParseError? { rejects(Array(s.utf8)) }

@Test func scalarsParseToTheirCases() throws {
    #expect(try parse("null") == .null)
    #expect(try parse(" true ") == .bool(true))
    #expect(try parse("false") == .bool(false))
    #expect(try parse("0") == .int(0))
    #expect(try parse("-0") == .int(0))
    #expect(try parse("42") == .int(42))
    #expect(try parse("-17") == .int(-17))
    #expect(try parse("9223372036854775807") == .int(.max))
    #expect(try parse("-9223372036854775808") == .int(.min))
    #expect(try parse("9223372036854775808") == .double(9223372036854775808.0))
    #expect(try parse("1.5") == .double(1.5))
    #expect(try parse("-0.25e2") == .double(-25))
    #expect(try parse("1E3") == .double(1000))
    #expect(try parse("1e-7") == .double(1e-7))
    #expect(try parse("0.1") == .double(0.1))
    #expect(try parse("123456789012345678901234567890") == .double(1.2345678901234568e29))
    #expect(try parse("2.2250738585072014e-308") == .double(2.2250738585072014e-308))
    #expect(try parse("\"hi\"") == .string("hi"))
}

@Test func integersStayExactThroughARoundTrip() throws {
    for v: Int64 in [0, 1, -1, 9_007_199_254_740_993, .max, .min, 1234567890123] {
        let value = JSONValue.int(v)
        #expect(value.jsonString == String(v))
        #expect(try JSONValue.parse(value.serialized()) == value)
    }
}

@Test func doublesRoundTripExactly() throws {
    let samples: [Double] = [0.1, 1.0 / 3.0, -2.5e-300, 1.7976931348623157e308, .leastNonzeroMagnitude, 123.456, 1e22, 1e23, 100.0, -0.0]
    for d in samples {
        let back = try JSONValue.parse(JSONValue.double(d).serialized())
        #expect(back == .double(d), "\(d)")
    }
    var rng = SystemRandomNumberGenerator()
    for _ in 0..<2000 {
        let d = Double(bitPattern: rng.next() & 0x7FEF_FFFF_FFFF_FFFF)
        #expect(try JSONValue.parse(JSONValue.double(d).serialized()) == .double(d))
    }
    #expect(JSONValue.double(.nan).jsonString == "null")
    #expect(JSONValue.double(.infinity).jsonString == "null")
}

@Test func everyEscapeIsDecoded() throws {
    let text = #""\"\\\/\b\f\n\r\t\u0041\u00e9\u20AC\u0000""#
    #expect(try parse(text) == .string("\"\\/\u{08}\u{0C}\n\r\tAé€\u{0}"))
}

@Test func serializerEscapesQuotesBackslashesAndControlCharacters() throws {
    let s = "a\"b\\c\n\r\t\u{08}\u{0C}\u{01}\u{1F}é😀/"
    let json = JSONValue.string(s).jsonString
    #expect(json == #""a\"b\\c\n\r\t\b\f\u0001\u001fé😀/""#)
    #expect(try parse(json) == .string(s))
    var all = ""
    for c in 0..<0x80 { all.unicodeScalars.append(Unicode.Scalar(UInt8(c))) }
    #expect(try JSONValue.parse(JSONValue.string(all).serialized()) == .string(all))
}

@Test func unicodeAndSurrogatePairsDecode() throws {
    #expect(try parse(#""\ud83d\ude00""#) == .string("😀"))
    #expect(try parse(#""\uD834\uDD1E x""#) == .string("𝄞 x"))
    #expect(try parse("\"héllo wörld 日本 😀\"") == .string("héllo wörld 日本 😀"))
    #expect(try parse("\"a\\n日本\"") == .string("a\n日本"))
    let value: JSONValue = ["ключ": "значение", "emoji": "🎉"]
    #expect(try JSONValue.parse(value.serialized()) == value)
    #expect(value.jsonString == #"{"ключ":"значение","emoji":"🎉"}"#)
}

@Test func loneSurrogatesAreRejected() {
    #expect(rejects(#""\ud83d""#) != nil)
    #expect(rejects(#""\ud83d x""#) != nil)
    #expect(rejects(#""\ud83d\u0041""#) != nil)
    #expect(rejects(#""\ude00""#) != nil)
    #expect(rejects(#""\ude00\ud83d""#) != nil)
}

@Test func invalidUTF8InStringsIsRejected() {
    let q = UInt8(ascii: "\"")
    let bad: [[UInt8]] = [
        [0xFF], [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80],
        [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0x80], [0xC3], [0xE2, 0x82],
    ]
    for seq in bad {
        let err = rejects([q] + seq + [q])
        #expect(err != nil, "\(seq)")
        #expect(err?.offset == 1, "\(seq)")
    }
    #expect(rejects([q, 0x61, 0x5C, 0x6E, 0xFF, q])?.offset == 4)
    #expect((try? JSONValue.parse([q, 0xC3, 0xA9, q])) == .string("é"))
}

@Test func malformedDocumentsAreRejectedWithAnOffset() {
    let cases: [(String, Int)] = [
        ("", 0), ("[1,]", 3), ("{\"a\":1,}", 7), ("[1 2]", 3), ("{\"a\" 1}", 5), ("{a:1}", 1),
        ("// c\n1", 0), ("/* c */ 1", 0), ("NaN", 0), ("Infinity", 0), ("-Infinity", 0),
        ("01", 0), ("1.", 0), (".5", 0), ("1e", 0), ("+1", 0), ("-", 0), ("tru", 0), ("nul", 0),
        ("\"abc", 0), ("\"a\nb\"", 2), ("\"\\x\"", 1), ("\"\\u12G4\"", 5), ("[", 1), ("{", 1),
        ("1 2", 2), ("{\"a\":1}}", 7), ("1e400", 0), ("[1,,2]", 3), ("'a'", 0),
    ]
    for (text, offset) in cases {
        let err = rejects(text)
        #expect(err != nil, "\(text) was accepted")
        #expect(err?.offset == offset, "\(text): \(String(describing: err))")
    }
}

@Test func nestingDeeperThanTheLimitIsRejectedWithoutRecursion() throws {
    let ok = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
    #expect(try parse(ok) != .null)
    let tooDeep = String(repeating: "[", count: 513) + String(repeating: "]", count: 513)
    #expect(rejects(tooDeep)?.message.contains("nesting") == true)
    let objects = String(repeating: "{\"a\":", count: 600) + "1" + String(repeating: "}", count: 600)
    #expect(rejects(objects) != nil)
    let hostile = String(repeating: "[", count: 1_000_000)
    #expect(rejects(hostile) != nil)
    #expect(try JSONValue.parse(Array("[[[1]]]".utf8), maxDepth: 3) == [[[1]]])
    #expect(try JSONValue.parse(Array("[[[]]]".utf8), maxDepth: 3) == [[[]]])
    #expect((try? JSONValue.parse(Array("[[[[]]]]".utf8), maxDepth: 3)) == nil)
    #expect((try? JSONValue.parse(Array("[[{}]]".utf8), maxDepth: 2)) == nil)
    #expect(rejects(Array("[[[[1]]]]".utf8)) == nil)
}

@Test func duplicateKeysKeepTheLastValueAtTheFirstPosition() throws {
    let v = try parse(#"{"a":1,"b":2,"a":3}"#)
    #expect(v["a"] == .int(3))
    #expect(v.objectValue?.keys == ["a", "b"])
    // Many keys go through the index path.
    var text = "{"
    for k in 0..<100 { text += "\"k\(k)\":\(k)," }
    text += "\"k5\":\"last\"}"
    let big = try parse(text)
    #expect(big.objectValue?.count == 100)
    #expect(big["k5"] == "last")
    #expect(big["k99"] == 99)
}

@Test func objectsKeepInsertionOrderAndCompareWithoutIt() throws {
    let v = try parse(#"{"z":1,"a":[true,null,"x"],"m":{"q":1.5}}"#)
    #expect(v.jsonString == #"{"z":1,"a":[true,null,"x"],"m":{"q":1.5}}"#)
    #expect(v == (try parse(#"{"m":{"q":1.5},"a":[true,null,"x"],"z":1}"#)))
    #expect(v != (try parse(#"{"z":2,"a":[true,null,"x"],"m":{"q":1.5}}"#)))
    #expect(Set([v, try parse(#"{"a":[true,null,"x"],"m":{"q":1.5},"z":1}"#)]).count == 1)
    var o = v.objectValue!
    o["a"] = nil
    o["new"] = "n"
    #expect(JSONValue.object(o).jsonString == #"{"z":1,"m":{"q":1.5},"new":"n"}"#)
}

@Test func accessorsAndLiteralsReadNaturally() {
    let v: JSONValue = ["name": "x", "n": 3, "pi": 3.14, "ok": true, "list": [1, "two", nil], "none": nil]
    #expect(v["name"]?.stringValue == "x")
    #expect(v["n"]?.intValue == 3)
    #expect(v["n"]?.doubleValue == 3)
    #expect(v["pi"]?.doubleValue == 3.14)
    #expect(v["ok"]?.boolValue == true)
    #expect(v["list"]?[1] == "two")
    #expect(v["list"]?[5] == nil)
    #expect(v["none"]?.isNull == true)
    #expect(v["missing"] == nil)
    #expect(v.objectValue?.count == 6)
    #expect(JSONValue.string("s")["k"] == nil)
}

@Test func parseAcceptsAnyByteCollection() throws {
    let text = #"{"a":[1,2,{"b":"c"}]}"#
    let expected = try parse(text)
    #expect(try JSONValue.parse(Data(text.utf8)) == expected)
    #expect(try JSONValue.parse(text) == expected)
    #expect(try JSONValue.parse(Array(("xx" + text).utf8).dropFirst(2)) == expected)
    #expect(try JSONValue.parse(text.utf8.lazy.map { $0 }) == expected)
}

@Test func largeDocumentsRoundTrip() throws {
    var items: [JSONValue] = []
    for k in 0..<20_000 {
        items.append(["id": .int(Int64(k)), "name": .string("item \(k) \"q\" é"), "score": .double(Double(k) / 7), "tags": ["a", "b"]])
    }
    let doc = JSONValue.array(items)
    let bytes = doc.serialized()
    #expect(try JSONValue.parse(bytes) == doc)
}
