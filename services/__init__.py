"""The four services. Each is a folder with the same rooms: servicer (RPC
handlers), domain logic, store, migrations. Services never import each other."""
