package auth

// CachedTokens is how many verified tokens v remembers.
func (v *Verifier) CachedTokens() int {
	if v.cache == nil {
		return 0
	}
	v.cache.mu.RLock()
	defer v.cache.mu.RUnlock()
	return len(v.cache.entries)
}
