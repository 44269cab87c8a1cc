"""Fleet-side tools: push configs to vehicles or groups and read the fleet's status from the broker."""
