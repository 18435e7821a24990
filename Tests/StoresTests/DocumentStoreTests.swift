import Foundation
import Testing

@testable import Stores

@Test func putGetDeleteAndList() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let docs = try FileDocumentStore(directory: dir.url.appendingPathComponent("docs"))
    #expect(try await docs.put("prd", Array("# PRD\n".utf8)))
    #expect(try await !docs.put("prd", Array("# PRD v2\n".utf8)))
    #expect(try await docs.put("brief", []))
    #expect(try await docs.get("prd") == Array("# PRD v2\n".utf8))
    #expect(try await docs.get("brief") == [])
    #expect(try await docs.get("missing") == nil)
    #expect(try await docs.exists("prd"))
    #expect(try await !docs.exists("missing"))
    let listed = try await docs.list()
    #expect(listed.map(\.id) == ["brief", "prd"])
    #expect(listed.map(\.bytes) == [0, 9])
    #expect(try await docs.delete("prd"))
    #expect(try await !docs.delete("prd"))
    #expect(try await docs.get("prd") == nil)
    #expect(try await docs.list().map(\.id) == ["brief"])
    #expect(dir.contents("docs") == ["brief.md"])  // no temporary file left behind
}

@Test func filesPlacedByHandCountAndOthersAreIgnored() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let docs = try FileDocumentStore(directory: dir.url)
    let fm = FileManager.default
    #expect(fm.createFile(atPath: dir.path + "/hand.md", contents: Data("by hand".utf8)))
    #expect(fm.createFile(atPath: dir.path + "/notes.txt", contents: Data("x".utf8)))
    #expect(fm.createFile(atPath: dir.path + "/.hidden.md", contents: Data("x".utf8)))
    #expect(fm.createFile(atPath: dir.path + "/bad name.md", contents: Data("x".utf8)))
    #expect(fm.createFile(atPath: dir.path + "/.md", contents: Data("x".utf8)))
    try fm.createDirectory(atPath: dir.path + "/folder.md", withIntermediateDirectories: false)
    #expect(try await docs.list().map(\.id) == ["hand"])
    #expect(try await docs.get("hand") == Array("by hand".utf8))
    #expect(try await docs.exists("hand"))
    #expect(try await !docs.exists("folder"))
    #expect(try await docs.get("folder") == nil)
    #expect(try await !docs.delete("folder"))
}

@Test func textsDecodeUTF8AndReplaceInvalidBytes() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let docs = try FileDocumentStore(directory: dir.url)
    _ = try await docs.put("good", Array("héllo".utf8))
    _ = try await docs.put("bad", [0x61, 0xFF, 0x62])
    let texts = try await docs.texts(["good", "bad", "missing", "../etc/passwd"])
    #expect(texts == ["good": "héllo", "bad": "a\u{FFFD}b"])
}

@Test func invalidIDsNeverTouchTheFileSystem() async throws {
    let root = TempDirectory()
    defer { root.remove() }
    let docsURL = root.url.appendingPathComponent("docs")
    let docs = try FileDocumentStore(directory: docsURL)
    let bad = ["../x", "a/b", "a\0b", "..", "", ".", String(repeating: "a", count: 129), "é", "日本", ".hidden", "-x"]
    for id in bad {
        await #expect(throws: StoreError.self) { _ = try await docs.put(id, Array("pwned".utf8)) }
        do {
            _ = try await docs.put(id, [])
        } catch {
            #expect(error.kind == .invalidID)
        }
        #expect(try await docs.get(id) == nil)
        #expect(try await !docs.exists(id))
        #expect(try await !docs.delete(id))
    }
    #expect(root.contents() == ["docs"])
    #expect(root.contents("docs").isEmpty)
    #expect(!FileManager.default.fileExists(atPath: root.path + "/x.md"))
    // A file that an invalid id would name, if it reached the file system, stays unseen and untouched.
    #expect(FileManager.default.createFile(atPath: root.path + "/x.md", contents: Data("outside".utf8)))
    #expect(try await docs.get("../x") == nil)
    #expect(try await !docs.delete("../x"))
    #expect(FileManager.default.fileExists(atPath: root.path + "/x.md"))
}

@Test func aReaderDuringReplacementSeesTheOldOrTheNewContentNeverATornOne() async throws {
    let dir = TempDirectory()
    defer { dir.remove() }
    let docs = try FileDocumentStore(directory: dir.url)
    let a = [UInt8](repeating: UInt8(ascii: "a"), count: 256 * 1024)
    let b = [UInt8](repeating: UInt8(ascii: "b"), count: 200 * 1024)
    _ = try await docs.put("doc", a)
    try await withThrowingTaskGroup(of: Int.self) { group in
        group.addTask {
            for k in 0..<40 { _ = try await docs.put("doc", k % 2 == 0 ? b : a) }
            return 0
        }
        group.addTask {
            var reads = 0
            for _ in 0..<400 {
                let got = try await docs.get("doc")
                #expect(got == a || got == b)
                reads += 1
                await Task.yield()
            }
            return reads
        }
        try await group.waitForAll()
    }
    #expect(try await docs.get("doc") == a)
}

@Test func theDocumentDirectoryIsCreatedWhenMissing() async throws {
    let root = TempDirectory()
    defer { root.remove() }
    let url = root.url.appendingPathComponent("x/y/docs")
    let docs = try FileDocumentStore(directory: url)
    #expect(try await docs.list().isEmpty)
    #expect(try await docs.put("one", Array("1".utf8)))
    #expect(FileManager.default.fileExists(atPath: url.path + "/one.md"))
}
