package state

// Stored reads a record from the bbolt file itself, past the records staged
// in memory: what a crash would leave.
func (b *Bolt) Stored(id string) (Record, error) { return b.load(id) }

// HoldReader opens a read transaction on the file, as Create does for its
// existence check, and returns the function that ends it.
func (b *Bolt) HoldReader() (end func() error, err error) {
	tx, err := b.db.Begin(false)
	if err != nil {
		return nil, err
	}
	return tx.Rollback, nil
}
