"""HTTP routes: thin handlers over the tenant service."""
