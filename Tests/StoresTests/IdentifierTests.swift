import Testing

@testable import Stores

@Test func validIDsMatchThePattern() {
    for id in ["a", "A", "0", "story-1", "s.t_o-r.y", "x" + String(repeating: "y", count: 127)] {
        #expect(Identifier.isValidID(id), "\(id)")
    }
}

@Test func invalidIDsAreRejected() {
    let bad = [
        "", ".", "..", "../x", "a/b", "a\0b", "-a", "_a", ".a", "a b", "a:b", "é", "aé",
        "x" + String(repeating: "y", count: 128), "a\n", "a\\b", "😀",
    ]
    for id in bad {
        #expect(!Identifier.isValidID(id), "\(id)")
    }
}

@Test func memoryKeysAllowColonsAndLongerKeys() {
    #expect(Identifier.isValidMemoryKey("analyst:story-1"))
    #expect(Identifier.isValidMemoryKey("a" + String(repeating: ":", count: 255)))
    #expect(!Identifier.isValidMemoryKey("a" + String(repeating: "b", count: 256)))
    #expect(!Identifier.isValidMemoryKey(":a"))
    #expect(!Identifier.isValidMemoryKey(""))
    #expect(!Identifier.isValidMemoryKey("a/b"))
    #expect(!Identifier.isValidMemoryKey("ключ"))
}
