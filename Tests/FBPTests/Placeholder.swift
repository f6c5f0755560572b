// FBPTests
