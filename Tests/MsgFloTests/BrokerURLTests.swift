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
            #expect(error.description.contains("user:***@host"))
        }
    }

    @Test func resolutionOrder() throws {
        let env = ["MSGFLO_BROKER": "mqtt://a", "CLOUDAMQP_URL": "amqp://b"]
        #expect(try BrokerURL.resolve("amqp://c", environment: env).host == "c")
        #expect(try BrokerURL.resolve(nil, environment: env).host == "a")
        #expect(try BrokerURL.resolve("", environment: env).host == "a")
        #expect(try BrokerURL.resolve(nil, environment: ["CLOUDAMQP_URL": "amqp://b"]).host == "b")
        #expect(try BrokerURL.resolve(nil, environment: ["MSGFLO_BROKER": ""]).description == "amqp://localhost:5672/")
    }
}
