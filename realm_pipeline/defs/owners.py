"""Who answers for realm's assets (the UI's Owners column and `owner:` selections): one team."""

REALM_OWNERS = ["team:realm"]
