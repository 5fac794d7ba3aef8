"""The web side: the overlay's event server, the supervisors' hub and floor, replay."""
