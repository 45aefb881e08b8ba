"""The generation engine: requests in, RGBA results out; no Qt widgets, torch and diffusers imported lazily."""
