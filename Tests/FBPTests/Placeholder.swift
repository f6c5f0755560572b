// FBPTests: the fbp branch's tests land here.
