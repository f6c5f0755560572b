// Keeps the FBPTests target buildable until the fbp branch adds its tests.
