"""The linkage engine: normalization (:mod:`.normalize`), the privacy-preserving encoding (:mod:`.encode`), the
matcher both modes share (:mod:`.match`) and patient lists as CSV (:mod:`.table`)."""
