-- Index for the expiry sweep of bindings still waiting for their first caller.
CREATE INDEX bindings_wait_expiry ON bindings (wait_expires_at);
