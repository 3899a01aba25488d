"""phi_utils: a runnable reproduction of phi-1 ("Textbooks Are All You Need", Gunasekar et al. 2023).

One module per pipeline stage; the numbered notebooks in `notebooks/` are thin narratives over it.
"""

__version__ = "0.1.0"
