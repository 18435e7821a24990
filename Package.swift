// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "flowd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "flowd", targets: ["flowd"]),
    ],
    // Exact versions: an image built today and one built next month link the same code
    // (Package.resolved is not committed: the local package mirrors have their own commit ids).
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", exact: "6.2.2"),
        .package(url: "https://github.com/swift-server/async-http-client", exact: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-metrics", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio", exact: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", exact: "2.13.0"),
    ],
    targets: [
        // libmicrohttpd, through pkg-config; only HTTPServer imports it.
        .systemLibrary(
            name: "CMicroHTTPD",
            pkgConfig: "libmicrohttpd",
            providers: [.apt(["libmicrohttpd-dev"])]
        ),
        // Synchronisation shared by every module: a lock ThreadSanitizer understands (pthread) and
        // a list of tasks woken when a condition may hold (`WaitList`).
        .target(name: "FlowdSync"),
        // JSON values with ordered keys and exact integers: the strict parser and the serialiser.
        .target(name: "FlowdJSON"),
        // Generic HTTP server: the libmicrohttpd bridge into Swift concurrency. Knows nothing of flows.
        .target(
            name: "FlowdHTTP",
            dependencies: [
                "CMicroHTTPD", "FlowdSync", "FlowdJSON",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // PocketFlow semantics: nodes, flows, actions, retries, batches. No I/O.
        .target(
            name: "FlowEngine",
            dependencies: [
                "FlowdSync",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // agents/*.yaml and flows.yaml: loading, validation, the agent kinds.
        .target(
            name: "Agents",
            dependencies: [
                "FlowEngine", "FlowdSync",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // Memory (actor + JSONL, group commit), documents (docs/<id>.md), run records.
        .target(
            name: "Stores",
            dependencies: [
                "FlowdSync", "FlowdJSON",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The same store protocols on PostgreSQL, for several replicas on one database.
        .target(
            name: "PostgresStores",
            dependencies: [
                "Stores", "FlowdSync", "FlowdJSON",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Routes, request validation, JSON shapes, the executor actor, a run's owner. It knows
        // the run backend only as `RunBackend`: PostgresStores is not a dependency, so naming a
        // backend's type here cannot compile.
        .target(
            name: "FlowdAPI",
            dependencies: [
                "FlowdHTTP", "Agents", "Stores", "FlowdSync", "FlowdJSON",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // The console page and the OpenAPI document, compiled into the binary as bytes
            // (`PackageResources`): one file to ship, and each of them edited as what it is.
            resources: [
                .embedInCode("Resources/console.html"),
                .embedInCode("Resources/openapi.json"),
            ]
        ),
        // Opens the backend `--store` picks; the one module that names them.
        .target(
            name: "FlowdBackends",
            dependencies: [
                "FlowdAPI", "Agents", "Stores", "PostgresStores",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        // The test harness, for the test targets only: the routes in process (`.router`), the
        // server on a socket (`.live`), flowd as a child process; one client API for all three.
        .target(
            name: "FlowdTesting",
            dependencies: [
                "FlowdHTTP", "FlowdJSON", "FlowdSync",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The command line: `serve` (a ServiceGroup: HTTP server, pruner, backend, log writer),
        // `validate`, `run`, `bench-engine`.
        .executableTarget(
            name: "flowd",
            dependencies: [
                "FlowdAPI", "FlowdBackends", "FlowdHTTP", "Agents", "Stores", "FlowdSync", "FlowdJSON",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // mimalloc replaces glibc's malloc in the whole process (Debian libmimalloc-dev): memory
            // allocated on one thread and freed on another, the pattern of every request here,
            // costs glibc's allocator about a fifth of the server's CPU (docs/architecture.md).
            linkerSettings: [.linkedLibrary("mimalloc")]
        ),
        .testTarget(name: "FlowdJSONTests", dependencies: ["FlowdJSON"]),
        .testTarget(name: "FlowdHTTPTests", dependencies: ["FlowdHTTP", "FlowdTesting", "FlowdJSON"]),
        .testTarget(name: "FlowEngineTests", dependencies: ["FlowEngine", "FlowdSync"]),
        .testTarget(name: "AgentsTests", dependencies: ["Agents", "FlowEngine", "FlowdTesting", "FlowdSync", "FlowdJSON"]),
        .testTarget(name: "StoresTests", dependencies: ["Stores", "PostgresStores", "FlowdTesting", "FlowdSync", "FlowdJSON"]),
        .testTarget(name: "FlowdAPITests", dependencies: ["FlowdAPI", "FlowdBackends", "FlowdHTTP", "FlowdTesting", "Stores", "Agents", "FlowdSync", "FlowdJSON"]),
    ],
    swiftLanguageModes: [.v6]
)
