/// A string-keyed dictionary split into 64 smaller ones by the key's hash, so that growing
/// it never rehashes every key at once: a store holding millions of keys pauses for a
/// 64th of the time when one shard doubles.
struct ShardedMap<Value>: Sequence {
    private static var shardCount: Int { 64 }
    private var shards: [[String: Value]]

    init() {
        shards = Array(repeating: [:], count: ShardedMap.shardCount)
    }

    private static func shard(of key: String) -> Int {
        key.hashValue & (shardCount - 1)
    }

    subscript(key: String) -> Value? {
        get { shards[ShardedMap.shard(of: key)][key] }
        set { shards[ShardedMap.shard(of: key)][key] = newValue }
    }

    var count: Int { shards.reduce(0) { $0 + $1.count } }

    mutating func reserveCapacity(_ capacity: Int) {
        let each = capacity / ShardedMap.shardCount + 1
        for index in shards.indices { shards[index].reserveCapacity(each) }
    }

    func makeIterator() -> FlattenSequence<[[String: Value]]>.Iterator {
        shards.joined().makeIterator()
    }
}

extension ShardedMap: Sendable where Value: Sendable {}
