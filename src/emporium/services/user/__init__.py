"""user-service: user profiles and addresses (relational).

It owns who a user is (email, name) and where they ship to; credentials and roles belong to
auth-service. Produces `user.registered` through its outbox when a profile is created.
"""
