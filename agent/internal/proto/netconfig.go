package proto

import "errors"

// NetConfig is a NET_CONFIG request: eth0 takes this MAC and the islet.net
// form of an address (ADDR/PREFIX[,gw=IP][,dns=IP]); the agent parses both
// (netcfg) and answers INVALID_ARGUMENT for either malformed.
type NetConfig struct {
	MAC string `json:"mac"`
	Net string `json:"net"`
}

// Validate bounds the strings before they are parsed.
func (n *NetConfig) Validate(Limits) error {
	if n.MAC == "" || len(n.MAC) > 17 {
		return errors.New("mac must be xx:xx:xx:xx:xx:xx")
	}
	if n.Net == "" || len(n.Net) > 128 {
		return errors.New("net must be ADDR/PREFIX[,gw=IP][,dns=IP] (at most 128 bytes)")
	}
	return nil
}
