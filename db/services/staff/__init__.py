"""Staff: members and roles, invites, logging in and sessions."""
