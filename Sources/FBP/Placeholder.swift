// FBP
