"""What the kernel's events mean and what we answer: the event engine and its helpers.

`bus` fans events out, `engine` consumes the listener's events, `resolver` turns a miss
into entries from the peer table, `preprogram` plans the peer-entry sync that `peersync`
carries out, `ondemand` keeps and evicts entries programmed from misses, `arp` and
`answerer` send the waiting container its answer, `eventlog` writes events to the log.
"""
