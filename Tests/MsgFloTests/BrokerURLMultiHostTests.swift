import MsgFlo
import Testing

/// Several addresses of one broker in one URL (issue 15: a cluster behind several addresses).
@Suite struct BrokerURLMultiHostTests {
    @Test func listOfAMQPAddressesSharesCredentialsVhostAndOptions() throws {
        let u = try BrokerURL(parsing: "amqp://alice:s%40cret@h1:5672,h2:5673,h3/prod?heartbeat=10")
        #expect(u.host == "h1")
        #expect(u.port == 5672)
        #expect(u.endpoints.map(\.description) == ["h1:5672", "h2:5673", "h3:5672"])
        #expect(u.user == "alice")
        #expect(u.password == "s@cret")
        #expect(u.vhost == "prod")
        let second = u.at(u.endpoints[1])
        #expect(second.host == "h2" && second.port == 5673 && second.alternates.isEmpty)
        #expect(second.user == "alice" && second.password == "s@cret" && second.vhost == "prod")
        #expect(second.option("heartbeat") == "10")
        #expect(second.description == "amqp://alice:***@h2:5673/prod?heartbeat=10")
    }

    @Test func descriptionListsEveryAddressAndHidesThePassword() throws {
        let u = try BrokerURL(parsing: "amqp://user:hunter2@h1:5672,h2:5672,h3:5672/vh")
        #expect(u.description == "amqp://user:***@h1:5672,h2:5672,h3:5672/vh")
        #expect(!u.description.contains("hunter2"))
        #expect(try BrokerURL(parsing: u.unredacted) == u)
    }

    @Test func singleAddressRendersAsBefore() throws {
        let u = try BrokerURL(parsing: "amqp://guest:guest@127.0.0.1:26720/")
        #expect(u.alternates.isEmpty)
        #expect(u.endpoints.count == 1)
        #expect(u.unredacted == "amqp://guest:guest@127.0.0.1:26720/")
        #expect(u.connectionOrder().map(\.description) == ["127.0.0.1:26720"])
    }

    @Test func mqttListAndIPv6() throws {
        let u = try BrokerURL(parsing: "mqtt://u:p@[::1]:1884,127.0.0.1,broker.example:1885?qos=1")
        #expect(u.endpoints.map(\.description) == ["[::1]:1884", "127.0.0.1:1883", "broker.example:1885"])
        #expect(u.description == "mqtt://u:***@[::1]:1884,127.0.0.1:1883,broker.example:1885?qos=1")
    }

    @Test func shuffleKeepsTheSameAddresses() throws {
        let u = try BrokerURL(parsing: "amqp://h1,h2,h3,h4,h5,h6,h7,h8?shuffle=true")
        var orders = Set<[String]>()
        for _ in 0..<50 {
            let order = u.connectionOrder().map(\.host)
            #expect(order.sorted() == ["h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8"])
            orders.insert(order)
        }
        #expect(orders.count > 1)
        let fixed = try BrokerURL(parsing: "amqp://h1,h2,h3")
        #expect(fixed.connectionOrder().map(\.host) == ["h1", "h2", "h3"])
    }

    @Test(arguments: ["amqp://h1,,h3", "amqp://h1,", "amqp://,h2", "amqp://h1,h2:0", "amqp://h1,h2:x",
                      "mqtt://h1,[::1", "amqp://h1, h2"])
    func badListsAreOneLineErrors(_ text: String) {
        #expect(throws: MsgFloError.self) { try BrokerURL(parsing: text) }
    }

    @Test func errorsInAListNeverShowThePassword() {
        do {
            _ = try BrokerURL(parsing: "amqp://user:hunter2@h1,,h2/")
            Issue.record("parsed")
        } catch {
            #expect(!error.description.contains("hunter2"))
            #expect(error.description.contains("empty address"))
        }
    }

    @Test func tooManyAddressesRefused() {
        let many = (0...BrokerURL.maxEndpoints).map { "h\($0)" }.joined(separator: ",")
        #expect(throws: MsgFloError.self) { try BrokerURL(parsing: "amqp://" + many) }
        let most = (0..<BrokerURL.maxEndpoints).map { "h\($0)" }.joined(separator: ",")
        #expect((try? BrokerURL(parsing: "amqp://" + most))?.endpoints.count == BrokerURL.maxEndpoints)
    }

    @Test func resolveTakesAListFromTheEnvironment() throws {
        let u = try BrokerURL.resolve(nil, environment: ["MSGFLO_BROKER": "amqp://a:b@n1:1,n2:2/"])
        #expect(u.endpoints.map(\.description) == ["n1:1", "n2:2"])
    }
}
