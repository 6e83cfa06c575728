def test_conversation_ids_never_begin_with_a_dash() -> None:
    """A command line would read such an id as an option (one in 64 did, and ``gateway erase`` refused it)."""
    from gateway.conversation import new_conversation_id

    assert not any(new_conversation_id().startswith("-") for _ in range(3000))
