//! Examples of embedding rrlb; see the `[[example]]` targets and `README.md`.
