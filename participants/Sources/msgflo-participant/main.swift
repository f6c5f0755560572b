// msgflo-participant COMPONENT ROLE [options]: the example participants (participants/library.json).
import ExampleParticipants
import MsgFloParticipantMain

await ParticipantMain.run(library: Examples.all)
