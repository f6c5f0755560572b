import MsgFlo
import Testing

@Suite struct BrokerURLTests {
    @Test func amqpDefaults() throws {
        let u = try BrokerURL(parsing: "amqp://localhost")
        #expect(u.scheme == .amqp)
        #expect(u.host == "localhost")
        #expect(u.port == 5672)
        #expect(u.vhost == "/")
        #expect(u.user == nil)
        #expect(u.description == "amqp://localhost:5672/")
    }

    @Test func fullAMQPURL() throws {
        let u = try BrokerURL(parsing: "amqps://alice:s%40cret@rabbit.example:5999/prod?heartbeat=10&prefetch=4")
        #expect(u.scheme == .amqps)
        #expect(u.user == "alice")
        #expect(u.password == "s@cret")
        #expect(u.host == "rabbit.example")
        #expect(u.port == 5999)
        #expect(u.vhost == "prod")
        #expect(u.option("heartbeat") == "10")
        #expect(u.option("prefetch") == "4")
    }

    @Test func defaultPortsPerScheme() throws {
        #expect(try BrokerURL(parsing: "amqps://h").port == 5671)
        #expect(try BrokerURL(parsing: "mqtt://h").port == 1883)
        #expect(try BrokerURL(parsing: "mqtts://h").port == 8883)
    }

    @Test func vhostEncodings() throws {
        #expect(try BrokerURL(parsing: "amqp://localhost//").vhost == "/")
        #expect(try BrokerURL(parsing: "amqp://localhost/%2F").vhost == "/")
        #expect(try BrokerURL(parsing: "amqp://localhost/").vhost == "/")
        #expect(try BrokerURL(parsing: "amqp://localhost/a%2Fb").vhost == "a/b")
    }

    @Test func mqttOptions() throws {
        let u = try BrokerURL(parsing: "mqtt://u:p@127.0.0.1:18830?qos=1&clientId=abc&cleanSession=false")
        #expect(u.option("qos") == "1")
        #expect(u.option("clientId") == "abc")
        #expect(u.boolOption("cleanSession") == false)
        #expect(u.description == "mqtt://u:***@127.0.0.1:18830?qos=1&clientId=abc&cleanSession=false")
    }

    @Test func ipv6() throws {
        let u = try BrokerURL(parsing: "mqtt://[::1]:1884")
        #expect(u.host == "::1")
        #expect(u.port == 1884)
        #expect(u.description == "mqtt://[::1]:1884")
    }

    @Test func passwordNeverPrinted() throws {
        let u = try BrokerURL(parsing: "amqp://user:hunter2@host:5672/")
        #expect(u.description == "amqp://user:***@host:5672/")
        #expect(!"\(u)".contains("hunter2"))
        #expect(u.unredacted.contains("hunter2"))
        let roundTrip = try BrokerURL(parsing: u.unredacted)
        #expect(roundTrip == u)
    }

    @Test(arguments: [
        ("localhost", "expected scheme://host"),
        ("http://localhost", "unsupported scheme 'http'"),
        ("amqp://", "missing host"),
        ("amqp://host:99999", "invalid port '99999'"),
        ("amqp://host:abc", "invalid port 'abc'"),
        ("mqtt://[::1", "unterminated IPv6 address"),
        ("amqp://u:p@host:x", "invalid port 'x'"),
    ])
    func badURLs(text: String, why: String) {
        do {
            _ = try BrokerURL(parsing: text)
            Issue.record("\(text) parsed")
        } catch {
            #expect(error.code == .invalidURL)
            #expect(error.description.contains(why), "\(error)")
            #expect(!error.description.contains("\n"))
        }
    }

    @Test func badURLErrorHidesPassword() {
        do {
            _ = try BrokerURL(parsing: "amqp://user:hunter2@host:notaport/")
            Issue.record("parsed")
        } catch {
            #expect(!error.description.contains("hunter2"), "\(error)")
            #expect(error.description.contains("amqp://***@host"))
        }
    }

    @Test func resolutionOrder() throws {
        let env = ["MSGFLO_BROKER": "mqtt://a", "CLOUDAMQP_URL": "amqp://b"]
        #expect(try BrokerURL.resolve("amqp://c", environment: env).host == "c")
        #expect(try BrokerURL.resolve(nil, environment: env).host == "a")
        #expect(try BrokerURL.resolve(nil, environment: ["CLOUDAMQP_URL": "amqp://b"]).host == "b")
        #expect(try BrokerURL.resolve(nil, environment: [:]).description == "amqp://localhost:5672/")
    }

    /// A source that is given and empty or malformed is an error naming it, never a fallback to the next source
    /// (a typo in a script must not send its traffic to a live broker).
    @Test(arguments: [
        ("", ["MSGFLO_BROKER": "mqtt://a"], "--broker is empty"),
        (" ", [:], "--broker is empty"),
        (nil, ["MSGFLO_BROKER": "", "CLOUDAMQP_URL": "amqp://b"], "MSGFLO_BROKER is empty"),
        (nil, ["CLOUDAMQP_URL": ""], "CLOUDAMQP_URL is empty"),
        ("localhost", ["MSGFLO_BROKER": "mqtt://a"], "--broker: invalid broker URL 'localhost'"),
        (nil, ["MSGFLO_BROKER": "amqp//x", "CLOUDAMQP_URL": "amqp://b"], "MSGFLO_BROKER: invalid broker URL"),
    ] as [(String?, [String: String], String)])
    func emptyOrMalformedSourceIsAnError(_ argument: String?, _ env: [String: String], _ expected: String) {
        #expect {
            try BrokerURL.resolve(argument, environment: env)
        } throws: { error in
            "\(error)".contains(expected) && !"\(error)".contains("\n")
        }
    }

    /// A password with an unencoded `/ ? # @` cannot be told from the rest of the URL: whatever the parser makes of
    /// it, the error shows the user-info as `***` and echoes no piece of it.
    @Test(arguments: [
        "amqp://user:pa/ss@host:5672/",
        "amqp://user:pa?ss@host/",
        "amqp://user:pa#ss@host/",
        "amqp://user:5672/ss@host/vhost",
        "mqtt://user:p@s/s?x#y@host:1883",
        "amqp://user:hunter2@host:notaport/",
        "amqp://user:hunter2@[::1/",
        "amqp://user:hunter2@host:99999/",
        "amqp://user:hunter2@ho st/",
        "amqp://user:hunter2@host/%zz",
        "amqp://us%zz:hunter2@host/",
        "ftp://user:hunter2@host/",
        "user:hunter2@host",
        "amqp:/user:hunter2@host",
    ])
    func unparseableURLNeverShowsItsPassword(_ text: String) {
        do {
            let u = try BrokerURL(parsing: text)
            Issue.record("parsed as \(u)")
        } catch {
            let message = error.description
            for secret in ["pa/ss", "pa?ss", "pa#ss", "ss@host", "hunter2", "p@s", "user:pa", "5672/ss"] where text.contains(secret) {
                #expect(!message.contains(secret), "\(message)")
            }
            #expect(message.contains("***@"), "\(message)")
            #expect(!message.contains("\n"))
        }
    }

    @Test func redactHidesEverythingUpToTheLastAt() {
        #expect(BrokerURL.redact("amqp://u:p/w?x#y@host/v") == "amqp://***@host/v")
        #expect(BrokerURL.redact("amqp://host/v") == "amqp://host/v")
        #expect(BrokerURL.redact("u:p@host") == "***@host")
    }
}
