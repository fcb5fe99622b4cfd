package configs

// Lookups over the configuration. Packages that look things up on a hot path build their own maps.

// Queue returns the queue with the given id.
func (c *Config) Queue(id string) (Queue, bool) {
	for _, q := range c.Queues {
		if q.ID == id {
			return q, true
		}
	}
	return Queue{}, false
}

// Agent returns the agent with the given id.
func (c *Config) Agent(id string) (Agent, bool) {
	for _, a := range c.Agents {
		if a.ID == id {
			return a, true
		}
	}
	return Agent{}, false
}

// PauseReason returns the pause reason with the given id.
func (c *Config) PauseReason(id string) (PauseReason, bool) {
	for _, r := range c.PauseReasons {
		if r.ID == id {
			return r, true
		}
	}
	return PauseReason{}, false
}

// Number returns the WhatsApp sending number with the given phone number id.
func (c *Config) Number(phoneNumberID string) (Number, bool) {
	for _, n := range c.WhatsApp.Numbers {
		if n.PhoneNumberID == phoneNumberID {
			return n, true
		}
	}
	return Number{}, false
}

// Template returns the template with the given name and language.
func (c *Config) Template(name, language string) (Template, bool) {
	for _, t := range c.WhatsApp.Templates {
		if t.Name == name && t.Language == language {
			return t, true
		}
	}
	return Template{}, false
}

// Site returns the WebChat site with the given id.
func (c *Config) Site(id string) (Site, bool) {
	for _, s := range c.WebChat.Sites {
		if s.ID == id {
			return s, true
		}
	}
	return Site{}, false
}
