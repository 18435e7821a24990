import ArgumentParser
import FlowdAPI
import Stores
import Foundation

/// Options shared by the commands that touch the agents, documents and data.
struct StorageOptions: ParsableArguments {
    @Option(help: "Directory of agent YAML files and flows.yaml (FLOWD_AGENTS).")
    var agents: String?
    @Option(help: "Directory of documents, <id>.md (FLOWD_DOCS).")
    var docs: String?
    @Option(help: "Directory of memory and run records (FLOWD_DATA).")
    var data: String?
    @Option(help: "Where memory, documents and run records live: jsonl (files of --data and --docs) or postgres (FLOWD_STORE). Default jsonl.")
    var store: String?
    @Option(name: .customLong("database-url"), help: "postgres://user:password@host:port/database, with --store postgres (FLOWD_DATABASE_URL).")
    var databaseURL: String?
    @Option(name: .customLong("lease-ttl"), help: "Seconds after which the runs of a replica that stopped renewing its lease are taken over (or failed, with --on-restart fail), with --store postgres (FLOWD_LEASE_TTL). Default 15.")
    var leaseTTL: Double?
    @Option(name: .customLong("db-pool-size"), help: "Most connections to the database per process, with --store postgres (FLOWD_DB_POOL_SIZE). Default 16.")
    var dbPoolSize: Int?

    func apply(to configuration: inout FlowdConfiguration, environment: Environment) throws {
        configuration.agentsDirectory = URL(fileURLWithPath: environment.value(agents, "FLOWD_AGENTS") ?? "agents")
        configuration.docsDirectory = URL(fileURLWithPath: environment.value(docs, "FLOWD_DOCS") ?? "docs")
        configuration.dataDirectory = URL(fileURLWithPath: environment.value(data, "FLOWD_DATA") ?? "data")
        let storeName = environment.value(store, "FLOWD_STORE") ?? "jsonl"
        guard let kind = FlowdConfiguration.StoreKind(rawValue: storeName) else {
            throw ValidationError("--store must be jsonl or postgres, not \(storeName)")
        }
        configuration.store = kind
        configuration.databaseURL = environment.value(databaseURL, "FLOWD_DATABASE_URL").flatMap { $0.isEmpty ? nil : $0 }
        if kind == .postgres, configuration.databaseURL == nil {
            throw ValidationError("--store postgres needs --database-url (or FLOWD_DATABASE_URL)")
        }
        let ttl = try environment.seconds(leaseTTL, "FLOWD_LEASE_TTL") ?? configuration.leaseTTLSeconds
        guard ttl >= 1 else { throw ValidationError("--lease-ttl must be at least 1 second, not \(ttl)") }
        configuration.leaseTTLSeconds = ttl
        configuration.databasePoolSize = try environment.number(dbPoolSize, "FLOWD_DB_POOL_SIZE", in: 2...1000) ?? configuration.databasePoolSize
    }
}
