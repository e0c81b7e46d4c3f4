//! Examples of embedding rrlb; see the `[[example]]` targets.
