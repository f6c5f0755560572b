import Logging
import MsgFlo

/// Every participant heard on `fbp`, keyed by its id (several may share a role), with liveness.
///
/// A pure state machine: no I/O, no clock of its own. Callers pass `now` (seconds on any steady time line) to
/// ``observe(_:at:)`` and ``tick(at:)``, and act on the events returned.
///
/// Liveness (protocol.md): a participant is alive while its announcements keep coming. It is lost once nothing has
/// been heard from it for its `heartbeat` period (participants announce every period / 2.2, so one missed
/// announcement is tolerated), or for ``defaultTimeout`` when it declares none. A lost participant that announces
/// itself again is back. One lost for ``forgetAfter`` more is dropped from the registry, so that the random ids of
/// restarted processes do not pile up for ever.
package struct ParticipantRegistry: Sendable {
    package struct Entry: Sendable, Hashable {
        package var definition: ParticipantDefinition
        package var firstSeen: Double
        package var lastSeen: Double
        package var alive: Bool
        /// How long this participant may stay silent before it is lost.
        package var timeout: Double
        package var deadline: Double { lastSeen + timeout }
    }

    package enum Event: Sendable, Hashable {
        /// A new id.
        case added(ParticipantDefinition)
        /// A known id announced a different definition (ports, queues, role, …).
        case changed(old: ParticipantDefinition, new: ParticipantDefinition)
        /// A known, lost id announced itself again.
        case back(ParticipantDefinition)
        /// Silent for longer than its timeout.
        case lost(ParticipantDefinition)
        /// Lost long enough to be dropped.
        case forgotten(ParticipantDefinition)
    }

    /// A participant's id with its hash taken from its definition (``ParticipantDefinition/idHash``), where it was
    /// worked out once: looking up a re-announcement hashes one word instead of the id's bytes.
    package struct Key: Hashable, Sendable {
        package let id: String
        let hash: Int

        package init(_ id: String) {
            self.id = id
            hash = id.hashValue
        }

        init(_ d: ParticipantDefinition) {
            id = d.id
            hash = d.idHash
        }

        package func hash(into h: inout Hasher) { h.combine(hash) }
        package static func == (a: Key, b: Key) -> Bool { a.hash == b.hash && a.id == b.id }
    }

    package var defaultTimeout: Double
    package var forgetAfter: Double
    /// The entries, each in a slot that it keeps while registered (freed slots are reused); `index` finds them by
    /// id. A definition remembers its slot (``ParticipantDefinition/registrySlot``), so that a re-announcement of
    /// the very definition registered (what the discovery cache hands on) goes straight to its entry.
    private var slots: [Entry?] = []
    private var freeSlots: [Int] = []
    private var index: [Key: Int] = [:]
    /// role → ids, for the planner.
    package private(set) var idsByRole: [String: Set<String>] = [:]

    package init(defaultTimeout: Double = 600, forgetAfter: Double = 3600) {
        self.defaultTimeout = defaultTimeout
        self.forgetAfter = forgetAfter
    }

    package var count: Int { index.count }
    package subscript(_ id: String) -> Entry? { index[Key(id)].flatMap { slots[$0] } }

    /// Every entry, in no particular order.
    package var entries: some Collection<Entry> { slots.lazy.compactMap { $0 } }

    /// Every participant of a role, alive or lost, most recently seen first.
    package func participants(role: String) -> [Entry] {
        (idsByRole[role] ?? []).compactMap { self[$0] }.sorted { ($0.lastSeen, $0.definition.id) > ($1.lastSeen, $1.definition.id) }
    }

    package func alive(role: String) -> [Entry] { participants(role: role).filter(\.alive) }

    package var roles: Set<String> { Set(idsByRole.keys) }

    /// A discovery message arrived. Returns what changed: nothing for a plain re-announcement (only last-seen moves).
    package mutating func observe(_ definition: ParticipantDefinition, at now: Double) -> [Event] {
        let timeout = definition.heartbeat ?? defaultTimeout
        // Fast path, the common case: a live participant re-announcing the very definition registered (the
        // discovery cache hands on the registered copy). Its slot is known from the definition; only the time moves.
        let hint = definition.registrySlot
        if hint >= 0 && hint < slots.count, let e = slots[hint], e.definition.isSameStorage(definition),
           e.alive && e.timeout == timeout {
            slots[hint]!.lastSeen = max(e.lastSeen, now)
            return []
        }
        let key = Key(definition)
        guard let slot = index[key], var entry = slots[slot] else {
            let slot = freeSlots.popLast() ?? slots.count
            let entry = Entry(definition: definition, firstSeen: now, lastSeen: now, alive: true, timeout: timeout)
            if slot == slots.count { slots.append(entry) } else { slots[slot] = entry }
            index[key] = slot
            definition.registrySlot = slot
            idsByRole[definition.role, default: []].insert(definition.id)
            return [.added(definition)]
        }
        var events: [Event] = []
        entry.lastSeen = max(entry.lastSeen, now)
        entry.timeout = timeout
        if !entry.alive {
            entry.alive = true
            events.append(.back(definition))
        }
        if entry.definition != definition {
            let old = entry.definition
            if old.role != definition.role {
                idsByRole[old.role]?.remove(definition.id)
                if idsByRole[old.role]?.isEmpty == true { idsByRole[old.role] = nil }
                idsByRole[definition.role, default: []].insert(definition.id)
            }
            entry.definition = definition
            events.append(.changed(old: old, new: definition))
        }
        // The registered copy leads here next time (an equal copy from elsewhere does not: the fast path wants the
        // very one registered).
        if entry.definition.isSameStorage(definition) { definition.registrySlot = slot }
        slots[slot] = entry
        return events
    }

    /// Time passed: participants silent past their timeout are lost; those lost long enough are forgotten.
    package mutating func tick(at now: Double) -> [Event] {
        var events: [Event] = []
        for slot in slots.indices {
            guard let entry = slots[slot] else { continue }
            if entry.alive {
                if now > entry.deadline {
                    slots[slot]!.alive = false
                    events.append(.lost(entry.definition))
                }
            } else if now > entry.deadline + forgetAfter {
                remove(entry.definition.id)
                events.append(.forgotten(entry.definition))
            }
        }
        return events.sorted { $0.sortKey < $1.sortKey }
    }

    /// The earliest time at which ``tick(at:)`` has something to do, if any.
    package var nextDeadline: Double? {
        entries.lazy.map { $0.alive ? $0.deadline : $0.deadline + forgetAfter }.min()
    }

    package mutating func remove(_ id: String) {
        guard let slot = index.removeValue(forKey: Key(id)), let e = slots[slot] else { return }
        slots[slot] = nil
        freeSlots.append(slot)
        idsByRole[e.definition.role]?.remove(id)
        if idsByRole[e.definition.role]?.isEmpty == true { idsByRole[e.definition.role] = nil }
    }
}

extension ParticipantRegistry.Event {
    package var definition: ParticipantDefinition {
        switch self {
        case .added(let d), .back(let d), .lost(let d), .forgotten(let d): d
        case .changed(_, let d): d
        }
    }

    var sortKey: String { definition.id }

    /// One log line.
    /// One line; the participant's names escaped and capped each (``SafeText``), so that a huge or forged name
    /// leaves the rest of the line readable. (The daemon's log handler escapes whole lines too.)
    /// A lost participant is a warning; the rest is news.
    package var logLevel: Logger.Level {
        switch self {
        case .lost: .warning
        default: .info
        }
    }

    /// The participant's id, role and component as log metadata (so JSON logs can be filtered by them).
    package var logMetadata: Logger.Metadata {
        let d = definition
        return ["participant": .string(d.id), "role": .string(d.role), "component": .string(d.component)]
    }

    package var logLine: String {
        let d = definition
        func name(_ s: String) -> String { SafeText.escape(s, limit: 256) }
        let (id, role, component) = (name(d.id), name(d.role), name(d.component))
        return switch self {
        case .added: "participant added: \(id) (role \(role), component \(component))"
        case .changed: "participant changed: \(id) (role \(role), component \(component))"
        case .back: "participant back: \(id) (role \(role))"
        case .lost: "participant lost: \(id) (role \(role)), silent for longer than its timeout"
        case .forgotten: "participant forgotten: \(id) (role \(role)), lost for long"
        }
    }
}
