"""``asd enroll``: add a new operating condition to a registered model's section without retraining.

The clips are embedded with the model's own encoder and added to the section's references; rho
and the section's single threshold are refitted exactly (methods.md section 2), and the result is
registered as a new version (alias ``challenger``) whose parent stays untouched. Local-density
normalisation is what makes this safe: the new references bring their own local scale, so the one
threshold keeps meaning the same thing in the new domain. A model of channels (far, fused near + far,
near conditioned on far) has every channel's index of the section refitted the same way (refit.py).
"""

from asd_core.enrollment.clips import EnrollmentError, EnrollmentClip, read_enrollment_clips
from asd_core.enrollment.enroll import EnrollmentResult, enroll
from asd_core.enrollment.refit import ModelRefit, SectionRefit, refit_model_section, refit_section

__all__ = ["EnrollmentClip", "EnrollmentError", "EnrollmentResult", "ModelRefit", "SectionRefit", "enroll",
           "read_enrollment_clips", "refit_model_section", "refit_section"]
