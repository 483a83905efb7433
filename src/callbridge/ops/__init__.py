"""Operations: health, metrics, request IDs, logging."""
