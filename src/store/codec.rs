//! Binary encodings of keys and values.
