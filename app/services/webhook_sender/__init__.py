"""Client for receivers' webhook endpoints: signed delivery attempts and target-URL safety checks."""
