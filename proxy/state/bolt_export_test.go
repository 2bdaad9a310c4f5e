package state

// Stored reads a record from the bbolt file itself, past the records staged
// in memory: what a crash would leave.
func (b *Bolt) Stored(id string) (Record, error) { return b.load(id) }
