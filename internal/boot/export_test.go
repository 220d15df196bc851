package boot

// NewVerifier exposes newVerifier to the external tests.
var NewVerifier = newVerifier
