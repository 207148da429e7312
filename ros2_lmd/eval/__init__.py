"""Evaluation of decompositions as in the paper: perturbation metrics (PCC/MSE under modality
replacement), baselines and rule variants, SHAP and LMD+SHAP, modality Grad-CAM."""
